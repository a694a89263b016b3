"""Notice templates of the mail connector, one ``<kind>.txt`` per MailKind (package data)."""
