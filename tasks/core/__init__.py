"""The small core every layer stands on: models, errors, options, settings, names, file rules."""
