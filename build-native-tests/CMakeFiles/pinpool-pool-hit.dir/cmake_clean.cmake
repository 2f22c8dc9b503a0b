file(REMOVE_RECURSE
  "CMakeFiles/pinpool-pool-hit.dir/pool_hit_bench.cpp.o"
  "CMakeFiles/pinpool-pool-hit.dir/pool_hit_bench.cpp.o.d"
  "pinpool-pool-hit"
  "pinpool-pool-hit.pdb"
)

# Per-language clean rules from dependency scanning.
foreach(lang CXX)
  include(CMakeFiles/pinpool-pool-hit.dir/cmake_clean_${lang}.cmake OPTIONAL)
endforeach()
