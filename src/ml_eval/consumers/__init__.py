"""Consumers of the published marts: the HTML report and the lineage graph export."""
