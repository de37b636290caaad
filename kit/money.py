def money_format(cents: int, currency: str) -> str:
    """Format an amount in minor units for people: 12345, EUR -> '123.45 EUR'."""
    return f"{cents / 100:,.2f} {currency}"
