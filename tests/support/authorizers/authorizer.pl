#!/usr/bin/perl
# A FastCGI authorizer on Perl FCGI (libfcgi), for tests/authorize.rs; the decision table
# of authorizer.py, plus two broken answers flup cannot give. Usage: authorizer.pl PATH
use strict;
use warnings;
use FCGI;

my $socket = FCGI::OpenSocket($ARGV[0], 64) or die "cannot listen on $ARGV[0]";
my %env;
my $request = FCGI::Request(\*STDIN, \*STDOUT, \*STDERR, \%env, $socket);

sub has { exists $env{$_[0]} ? "yes" : "no" }

while ($request->Accept() >= 0) {
    my $auth = $env{HTTP_AUTHORIZATION} // "";
    my $uri = $env{REQUEST_URI} // "-";
    if ($env{FCGI_ROLE} ne "AUTHORIZER") {
        print "Status: 500 Wrong Role\r\n\r\nrole $env{FCGI_ROLE}";
    } elsif ($auth eq "Bearer good") {
        print "Status: 200\r\nVariable-AUTH_USER: alice\r\nVariable-X-Team: ops\r\n",
              "Variable-SCRIPT_FILENAME: /etc/passwd\r\nX-Authorizer-Only: leak\r\n\r\n",
              "the body of an allow, never seen";
    } elsif ($auth eq "Bearer nostatus") {
        print "Variable-AUTH_USER: eve\r\n\r\n";
    } elsif ($auth eq "Bearer empty") {
        # No output at all: lighttpd lets this through.
    } else {
        my $seen = sprintf("role=%s;cl=%s;sn=%s;pi=%s;uri=%s;auth=%s", $env{FCGI_ROLE},
            has("CONTENT_LENGTH"), has("SCRIPT_NAME"), has("PATH_INFO"), $uri,
            $env{HTTP_AUTHORIZATION} // "-");
        print "Status: 401 Unauthorized\r\nWWW-Authenticate: Bearer realm=\"test\"\r\n",
              "X-Seen: $seen\r\nVariable-AUTH_USER: leak\r\nContent-Type: text/plain\r\n\r\n",
              "denied $uri";
    }
    $request->Finish();
}
