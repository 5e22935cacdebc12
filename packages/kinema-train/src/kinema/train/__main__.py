"""`python -m kinema.train CONFIG [key=value ...]` (what torchrun launches on every rank)."""

import os
import sys


def drop_working_directory_from_path() -> None:
    """``python -m`` puts the working directory first on sys.path; a training run imports nothing from it, so a
    stray module there (a ``yaml.py`` in a dataset folder) cannot shadow a library. Plugin discovery ignores
    distributions in the working directory on its own (kinema.core.plugins)."""
    if sys.path and sys.path[0] in ("", os.getcwd()):
        del sys.path[0]


def main() -> None:
    drop_working_directory_from_path()
    import click

    from .cli import train_command

    try:
        code = train_command.main(args=sys.argv[1:], prog_name="python -m kinema.train", standalone_mode=False)
        if isinstance(code, int):  # a click Exit (e.g. a failed --check) comes back as its exit code
            sys.exit(code)
    except click.exceptions.Exit as exc:
        sys.exit(exc.exit_code)
    except click.ClickException as exc:
        exc.show()
        sys.exit(exc.exit_code)
    except Exception as exc:
        from kinema.core import KinemaError

        if isinstance(exc, KinemaError):
            click.echo(f"Error: {exc}", err=True)
            sys.exit(1)
        raise


if __name__ == "__main__":
    main()
