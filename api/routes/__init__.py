"""The API's routes: authenticate, check the role, parse, call one service, answer."""
