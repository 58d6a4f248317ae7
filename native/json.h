/* A small JSON reader and writer for the bridge's protocol headers (one line of JSON each way).
 *
 * Reading: json_parse() builds a tree of JsonValue in one allocation arena; json_get() looks up
 * an object member, json_at() an array element. Writing: JsonOut appends to a growing buffer
 * with json_out_* helpers that escape strings. Numbers are doubles (the protocol's integers fit
 * in 53 bits: instance numbers, ids, sizes below 2^31). */
#ifndef VSTPIPE_JSON_H
#define VSTPIPE_JSON_H

#include <stddef.h>

typedef enum { JSON_NULL, JSON_FALSE, JSON_TRUE, JSON_NUMBER, JSON_STRING, JSON_ARRAY,
               JSON_OBJECT } JsonKind;

typedef struct JsonValue JsonValue;
struct JsonValue {
    JsonKind kind;
    double number;
    char *string;        /* JSON_STRING: NUL-terminated UTF-8 (a NUL inside is refused) */
    size_t count;        /* JSON_ARRAY / JSON_OBJECT: members */
    JsonValue *items;    /* the members, in order */
    char **keys;         /* JSON_OBJECT: the members' names */
};

typedef struct JsonDoc {
    JsonValue *root;
    void *arena;         /* every allocation of the tree; json_free() releases it */
} JsonDoc;

/* 0 on success; -1 with a message in err (at most errlen bytes) otherwise. */
int json_parse(const char *text, size_t len, JsonDoc *doc, char *err, size_t errlen);
void json_free(JsonDoc *doc);

const JsonValue *json_get(const JsonValue *object, const char *key);     /* NULL if absent */
const JsonValue *json_at(const JsonValue *array, size_t index);         /* NULL if out */
const char *json_str(const JsonValue *v, const char *fallback);        /* a string or fallback */
double json_num(const JsonValue *v, double fallback);                  /* a number or fallback */
int json_bool(const JsonValue *v, int fallback);                        /* true/false or fallback */

typedef struct JsonOut {
    char *data;
    size_t len, cap;
    int failed;          /* out of memory: the text is incomplete and must not be sent */
} JsonOut;

void json_out_init(JsonOut *out);
void json_out_free(JsonOut *out);
/* Values and keys put the comma before themselves where one is due (after a value), so a
 * writer only opens and closes: json_out_open(o, '{'); json_out_key(o, "op");
 * json_out_string(o, "hello"); json_out_close(o, '}'). */
void json_out_open(JsonOut *out, char bracket);         /* '{' or '[' */
void json_out_close(JsonOut *out, char bracket);        /* '}' or ']' */
void json_out_key(JsonOut *out, const char *key);       /* "key": */
void json_out_string(JsonOut *out, const char *text);   /* quoted and escaped */
void json_out_number(JsonOut *out, double value);       /* integers exactly, else %.17g */
void json_out_bool(JsonOut *out, int value);
void json_out_value(JsonOut *out, const JsonValue *v);  /* a parsed value written back */

#endif
