"""Provider plugins. Built-ins register through the same entry-point group a third party uses."""
