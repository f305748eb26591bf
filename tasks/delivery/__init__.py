"""How accepted tests reach the user: written into the target, as a patch, or as a pushed branch."""
