"""Imported only by the stage runner's forkserver (it is in the forkserver's preload list): importing it
makes the forkserver die with the main process, see ``kinema.data.lifeline``. The preload list is the
one hook Python gives to run code in the forkserver, so the import itself is the action."""

from .lifeline import guard

guard()
