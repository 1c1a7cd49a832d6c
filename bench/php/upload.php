<?php
// upload: read and discard the request body, answer 13 bytes
$in = fopen('php://input', 'rb');
$total = 0;
while (!feof($in)) {
    $total += strlen(fread($in, 65536));
}
fclose($in);
header('X-Body-Length: ' . $total);
echo "Hello, world!";
