"""Running a target's code in isolation: the runner, container lifecycle, images, probe, leftovers."""
