file(REMOVE_RECURSE
  "CMakeFiles/pinpool-abi-stress.dir/abi_stress.cpp.o"
  "CMakeFiles/pinpool-abi-stress.dir/abi_stress.cpp.o.d"
  "pinpool-abi-stress"
  "pinpool-abi-stress.pdb"
)

# Per-language clean rules from dependency scanning.
foreach(lang CXX)
  include(CMakeFiles/pinpool-abi-stress.dir/cmake_clean_${lang}.cmake OPTIONAL)
endforeach()
