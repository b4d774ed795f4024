# Writes OUT, a C file defining `const char SYMBOL[]` with the bytes of IN
# (NUL-terminated): the built-in copy of a shipped catalogue.
# Usage: cmake -DIN=file -DOUT=file.c -DSYMBOL=name -P embed.cmake
file(READ "${IN}" hex HEX)
string(REGEX REPLACE "([0-9a-f][0-9a-f])" "0x\\1," bytes "${hex}")
string(REGEX REPLACE "(([^,]*,){16})" "\\1\n  " bytes "${bytes}")
file(WRITE "${OUT}" "/* Generated from ${IN} by notifiers/embed.cmake. */\nconst char ${SYMBOL}[] = {\n  ${bytes}0x00};\n")
