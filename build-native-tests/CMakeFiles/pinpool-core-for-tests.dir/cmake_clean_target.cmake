file(REMOVE_RECURSE
  "libpinpool-core-for-tests.a"
)
