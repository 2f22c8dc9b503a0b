
# Consider dependencies only in project.
set(CMAKE_DEPENDS_IN_PROJECT_ONLY OFF)

# The set of languages for which implicit dependencies are needed:
set(CMAKE_DEPENDS_LANGUAGES
  )

# The set of dependency files which are needed:
set(CMAKE_DEPENDS_DEPENDENCY_FILES
  "/work/main/native/core/block_registry.cpp" "CMakeFiles/pinpool-core-for-tests.dir/work/main/native/core/block_registry.cpp.o" "gcc" "CMakeFiles/pinpool-core-for-tests.dir/work/main/native/core/block_registry.cpp.o.d"
  "/work/main/native/core/handler.cpp" "CMakeFiles/pinpool-core-for-tests.dir/work/main/native/core/handler.cpp.o" "gcc" "CMakeFiles/pinpool-core-for-tests.dir/work/main/native/core/handler.cpp.o.d"
  "/work/main/native/core/leases.cpp" "CMakeFiles/pinpool-core-for-tests.dir/work/main/native/core/leases.cpp.o" "gcc" "CMakeFiles/pinpool-core-for-tests.dir/work/main/native/core/leases.cpp.o.d"
  "/work/main/native/core/transfers.cpp" "CMakeFiles/pinpool-core-for-tests.dir/work/main/native/core/transfers.cpp.o" "gcc" "CMakeFiles/pinpool-core-for-tests.dir/work/main/native/core/transfers.cpp.o.d"
  "/work/main/native/cuda/cuda_driver.cpp" "CMakeFiles/pinpool-core-for-tests.dir/work/main/native/cuda/cuda_driver.cpp.o" "gcc" "CMakeFiles/pinpool-core-for-tests.dir/work/main/native/cuda/cuda_driver.cpp.o.d"
  "/work/main/native/handlers/pool_adaptor.cpp" "CMakeFiles/pinpool-core-for-tests.dir/work/main/native/handlers/pool_adaptor.cpp.o" "gcc" "CMakeFiles/pinpool-core-for-tests.dir/work/main/native/handlers/pool_adaptor.cpp.o.d"
  )

# Targets to which this target links.
set(CMAKE_TARGET_LINKED_INFO_FILES
  )

# Fortran module output directory.
set(CMAKE_Fortran_TARGET_MODULE_DIR "")
