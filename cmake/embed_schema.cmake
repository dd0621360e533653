# Generates a C source holding every schema/NNN_*.sql file, in order, so the one
# executable carries its own migrations (no install-time path to get wrong).
# Invoked as: cmake -DSCHEMA_DIR=... -DOUT=... -P embed_schema.cmake
file(GLOB files "${SCHEMA_DIR}/[0-9][0-9][0-9]_*.sql")
list(SORT files)
set(body "/* generated from schema/ by cmake/embed_schema.cmake; do not edit */\n#include \"common/migrations.h\"\n")
set(table "const es_migration_t es_migrations[] = {\n")
set(i 0)
foreach(f IN LISTS files)
  get_filename_component(name "${f}" NAME)
  file(READ "${f}" hex HEX)
  string(REGEX REPLACE "([0-9a-f][0-9a-f])" "0x\\1," hex "${hex}")
  string(APPEND body "static const char m${i}[] = {${hex} 0};\n")
  string(APPEND table "    {\"${name}\", m${i}},\n")
  math(EXPR i "${i} + 1")
endforeach()
string(APPEND table "};\nconst int es_migrations_count = ${i};\n")
file(WRITE "${OUT}.tmp" "${body}${table}")
execute_process(COMMAND ${CMAKE_COMMAND} -E copy_if_different "${OUT}.tmp" "${OUT}")
