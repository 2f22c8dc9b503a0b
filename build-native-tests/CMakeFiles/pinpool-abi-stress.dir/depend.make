# Empty dependencies file for pinpool-abi-stress.
# This may be replaced when dependencies are built.
