"""`python -m kinema.train CONFIG [key=value ...]` (what torchrun launches on every rank)."""

import sys



def main() -> None:
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
