"""Generated tests a reviewer can read: rewriting accepted tests (names, imports, variables, assertions,
format) and checking in the sandbox that each rewritten test does what it did before."""
