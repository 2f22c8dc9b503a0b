# Empty dependencies file for pinpool-pool-hit.
# This may be replaced when dependencies are built.
