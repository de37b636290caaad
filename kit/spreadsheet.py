"""Text bound for a spreadsheet."""

# What Excel, LibreOffice and Google Sheets read as the start of a formula.
FORMULA_STARTS = ("=", "+", "-", "@", "\t", "\r")


def csv_cell(text: str) -> str:
    """Keep a spreadsheet from reading outside text as a formula (CSV injection)."""
    return f"'{text}" if text.startswith(FORMULA_STARTS) else text
