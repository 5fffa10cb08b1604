"""``python -m synthflow``: the same command line as ``synthflow``."""

from synthflow.cli import main

if __name__ == "__main__":
    main()
