"""Flan Scan: Nmap-based network vulnerability scanning with an offline CVE database."""

__version__ = "0.1.0"
