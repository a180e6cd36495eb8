"""MkDocs hooks: pages that are generated from the code, so they cannot drift from it."""
import os


def _config_reference() -> str:
    from mpi_es.config import reference
    return reference.markdown()


def _command_line() -> str:
    os.environ["COLUMNS"] = "100"
    from mpi_es.cli import build_parser
    parser = build_parser()
    parts = ["```", parser.format_help().rstrip(), "```"]
    for name, command in parser.commands.items():
        parts += ["", f"### `{name}`", "", "```", command.format_help().rstrip(), "```"]
    return "\n".join(parts)


GENERATED = {"<!-- generated: config reference -->": _config_reference,
             "<!-- generated: command line -->": _command_line}


def on_page_markdown(markdown, page, config, files):
    for marker, make in GENERATED.items():
        if marker in markdown:
            markdown = markdown.replace(marker, make())
    return markdown
