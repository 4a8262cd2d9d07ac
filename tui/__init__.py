"""virtdeck's user interfaces: the Textual application and the virsh-like CLI."""
