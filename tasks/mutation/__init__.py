"""Mutation testing of a module's accepted tests with mutmut, in the sandbox: the score, the surviving
mutants for the refinement prompt, and whether one new test kills a survivor."""
