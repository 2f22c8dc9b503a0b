# Empty dependencies file for pinpool-abi-misuse.
# This may be replaced when dependencies are built.
