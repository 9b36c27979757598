"""Devices a process may call, and the kit for writing your own."""
