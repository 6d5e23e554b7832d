"""The losses of the papers, one named function per equation."""
