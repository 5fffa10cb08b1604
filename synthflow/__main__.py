"""``python -m synthflow``: the same command line as ``synthflow``."""

from synthflow.console import main

if __name__ == "__main__":
    main()
