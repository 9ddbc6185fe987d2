"""Optional integrations with other systems, each behind an extra and imported only when used."""
