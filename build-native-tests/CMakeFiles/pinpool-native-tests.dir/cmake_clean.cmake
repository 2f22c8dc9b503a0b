file(REMOVE_RECURSE
  "CMakeFiles/pinpool-native-tests.dir/native_tests.cpp.o"
  "CMakeFiles/pinpool-native-tests.dir/native_tests.cpp.o.d"
  "pinpool-native-tests"
  "pinpool-native-tests.pdb"
)

# Per-language clean rules from dependency scanning.
foreach(lang CXX)
  include(CMakeFiles/pinpool-native-tests.dir/cmake_clean_${lang}.cmake OPTIONAL)
endforeach()
