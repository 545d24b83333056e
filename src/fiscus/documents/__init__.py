"""What a document says, independent of how it is drawn: one view model for the PDF and the page."""
