"""The target project: its modules and where its tests are; a repository TARGET cloned, credentials kept out of sight."""
