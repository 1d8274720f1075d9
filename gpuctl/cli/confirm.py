"""The one way a command asks before it spends or deletes: -y answers, a terminal asks, anything else refuses."""

from __future__ import annotations

import click

from gpuctl.app import App
from gpuctl.cli.output import info
from gpuctl.errors import Declined, UsageError


def confirm_or_refuse(app: App, question: str, *, refused: str, hint: str, shown: str | None = None) -> None:
    """Go on only with a yes: ``-y``, or an answer on the terminal; without one raise UsageError(``refused``, ``hint``).

    ``shown`` (the price, what is deleted) is printed first; with ``-y`` it is still shown unless ``-q``.
    Answering no raises Declined: exit 130, like Ctrl-C or the wizard's Esc (the user stopped it; nothing
    was done), with a line saying so rather than "interrupted".
    """
    if app.yes:
        if shown:
            info(app, shown)
        return
    if shown:
        click.echo(shown, err=True)
    if not app.can_prompt:
        raise UsageError(refused, hint)
    if not click.confirm(question, default=False, err=True):
        raise Declined()
