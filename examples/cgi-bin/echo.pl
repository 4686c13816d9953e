#!/usr/bin/perl
# A CGI script in Perl: answers the request body as it is, with its length
# and the method, reading CONTENT_LENGTH bytes or, when the length is
# unknown, to the end.
use strict;
use warnings;
binmode STDIN;
binmode STDOUT;
my $len = $ENV{CONTENT_LENGTH};
my $body = '';
if (defined $len && $len ne '') {
    my $got = 0;
    while ($got < $len) {
        my $n = read(STDIN, $body, $len - $got, $got);
        last if !$n;
        $got += $n;
    }
} else {
    local $/;
    $body = <STDIN> // '';
}
print "Content-Type: application/octet-stream\r\n";
print "X-Method: $ENV{REQUEST_METHOD}\r\n";
print "X-Length: " . length($body) . "\r\n\r\n";
print $body;
