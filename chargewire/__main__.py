"""`python -m chargewire`: the same command line as the `chargewire` script."""

from chargewire.cli import app

if __name__ == "__main__":
    app(prog_name="chargewire")
