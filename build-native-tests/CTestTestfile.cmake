# CMake generated Testfile for 
# Source directory: /work/main/test/native
# Build directory: /work/main/build-native-tests
# 
# This file includes the relevant testing commands required for 
# testing this directory and lists subdirectories to be tested as well.
add_test(pinpool-native-tests "/work/main/build-native-tests/pinpool-native-tests")
set_tests_properties(pinpool-native-tests PROPERTIES  _BACKTRACE_TRIPLES "/work/main/test/native/CMakeLists.txt;57;add_test;/work/main/test/native/CMakeLists.txt;0;")
add_test(pinpool-abi-misuse "/work/main/build-native-tests/pinpool-abi-misuse")
set_tests_properties(pinpool-abi-misuse PROPERTIES  _BACKTRACE_TRIPLES "/work/main/test/native/CMakeLists.txt;57;add_test;/work/main/test/native/CMakeLists.txt;0;")
add_test(pinpool-abi-stress "/work/main/build-native-tests/pinpool-abi-stress")
set_tests_properties(pinpool-abi-stress PROPERTIES  _BACKTRACE_TRIPLES "/work/main/test/native/CMakeLists.txt;57;add_test;/work/main/test/native/CMakeLists.txt;0;")
