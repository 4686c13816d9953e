#!/bin/sh
# A CGI script in shell: "Hello, World!" and the path below the script.
printf 'Content-Type: text/plain; charset=utf-8\r\n\r\n'
printf 'Hello, World!\n'
printf 'PATH_INFO=%s QUERY_STRING=%s\n' "$PATH_INFO" "$QUERY_STRING"
