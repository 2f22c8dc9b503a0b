file(REMOVE_RECURSE
  "CMakeFiles/pinpool-core-for-tests.dir/work/main/native/core/block_registry.cpp.o"
  "CMakeFiles/pinpool-core-for-tests.dir/work/main/native/core/block_registry.cpp.o.d"
  "CMakeFiles/pinpool-core-for-tests.dir/work/main/native/core/handler.cpp.o"
  "CMakeFiles/pinpool-core-for-tests.dir/work/main/native/core/handler.cpp.o.d"
  "CMakeFiles/pinpool-core-for-tests.dir/work/main/native/core/leases.cpp.o"
  "CMakeFiles/pinpool-core-for-tests.dir/work/main/native/core/leases.cpp.o.d"
  "CMakeFiles/pinpool-core-for-tests.dir/work/main/native/core/transfers.cpp.o"
  "CMakeFiles/pinpool-core-for-tests.dir/work/main/native/core/transfers.cpp.o.d"
  "CMakeFiles/pinpool-core-for-tests.dir/work/main/native/cuda/cuda_driver.cpp.o"
  "CMakeFiles/pinpool-core-for-tests.dir/work/main/native/cuda/cuda_driver.cpp.o.d"
  "CMakeFiles/pinpool-core-for-tests.dir/work/main/native/handlers/pool_adaptor.cpp.o"
  "CMakeFiles/pinpool-core-for-tests.dir/work/main/native/handlers/pool_adaptor.cpp.o.d"
  "libpinpool-core-for-tests.a"
  "libpinpool-core-for-tests.pdb"
)

# Per-language clean rules from dependency scanning.
foreach(lang CXX)
  include(CMakeFiles/pinpool-core-for-tests.dir/cmake_clean_${lang}.cmake OPTIONAL)
endforeach()
