# Empty dependencies file for pinpool-core-for-tests.
# This may be replaced when dependencies are built.
