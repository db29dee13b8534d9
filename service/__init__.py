"""SRM Bench service: REST API, SQL results database, dispatch to Ray, CLI."""
