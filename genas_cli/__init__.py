"""The top floor: the ``genas`` console command, one entry point for every stage's tool.

``genas <command> ...`` runs the same ``main(argv)`` as ``python tools/<tool>.py ...``; the
command table in :mod:`genas_cli.commands` names each stage's CLI module.  Nothing imports this
package: it sits below every stage.
"""
