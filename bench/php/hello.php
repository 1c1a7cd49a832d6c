<?php
// tiny: 13 bytes, no Content-Length (php-fpm's default; gateways answer chunked)
echo "Hello, world!";
