"""`coverage json` as the sandbox runs it for a whole-project measurement: coverage.py's own command, less two
costs that grow with the project. Its reporter writes with json.dump, which always takes the pure-Python
encoder (1.3 s of a 2000-file report), and opens the data file anew for each of its queries (three a file).
Here the report is encoded by json.dumps's C encoder, and the data file stays open while it is made: the
same report, the same exit status.

Runs inside the sandbox with the runner's Python (it is copied into the run's workspace):
`python covsweep_coverage_json.py ARGS`, ARGS those of `coverage json`.
"""

import json
import os
import sys

from coverage import cmdline, jsonreport


def _dump(obj, fp, **kwargs) -> None:
    fp.write(json.dumps(obj, **kwargs))


def _on_one_connection(report):
    def report_with_data_open(self, morfs, outfile):
        data = self.coverage.get_data()
        if not os.path.exists(data.data_filename()):
            # Opening it would create the file, and closing it would say "Couldn't end data file"
            # instead of coverage's "No data to report".
            return report(self, morfs, outfile)
        with data.keep_db_open():  # as coverage's own HTML report holds it
            return report(self, morfs, outfile)

    return report_with_data_open


if __name__ == "__main__":
    json.dump = _dump  # the module jsonreport writes with; nothing else in this process writes JSON
    jsonreport.JsonReporter.report = _on_one_connection(jsonreport.JsonReporter.report)
    sys.exit(cmdline.main(["json", *sys.argv[1:]]))
