# Empty dependencies file for pinpool-native-tests.
# This may be replaced when dependencies are built.
