file(REMOVE_RECURSE
  "CMakeFiles/pinpool-abi-misuse.dir/abi_misuse.cpp.o"
  "CMakeFiles/pinpool-abi-misuse.dir/abi_misuse.cpp.o.d"
  "pinpool-abi-misuse"
  "pinpool-abi-misuse.pdb"
)

# Per-language clean rules from dependency scanning.
foreach(lang CXX)
  include(CMakeFiles/pinpool-abi-misuse.dir/cmake_clean_${lang}.cmake OPTIONAL)
endforeach()
