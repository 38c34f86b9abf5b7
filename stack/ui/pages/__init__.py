"""One module per page of the console; each gives its `routes()`."""
