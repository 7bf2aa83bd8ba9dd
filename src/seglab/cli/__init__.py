"""The ``seglab`` command line: one typer app, one module of commands per area."""
