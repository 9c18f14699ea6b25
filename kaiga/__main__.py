"""`python -m kaiga ...`: the `kaiga` command without its entry-point script (e.g. on a machine
where the package is on PYTHONPATH but not installed).

Example:
    $ python -m kaiga --help
"""

from kaiga.cli import main

if __name__ == "__main__":  # not when a test collector imports the module
    main()
