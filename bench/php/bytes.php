<?php
// bytes.php?N: N bytes of 'x', written in 64 KiB pieces
$n = max(0, (int) ($_SERVER['QUERY_STRING'] ?? '0'));
header('Content-Type: text/plain');
header('Content-Length: ' . $n);
$chunk = str_repeat('x', 65536);
while ($n >= 65536) {
    echo $chunk;
    $n -= 65536;
}
if ($n > 0) {
    echo substr($chunk, 0, $n);
}
