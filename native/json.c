/* The bridge's JSON: see json.h. */
#include "json.h"

#include <math.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#define MAX_NESTING 64

/* -- arena ---------------------------------------------------------------------------------- */

typedef struct Block { struct Block *next; } Block;

static void *arena_alloc(void **arena, size_t size) {
    Block *block = malloc(sizeof(Block) + size + 15);
    if (!block) return NULL;
    block->next = *arena;
    *arena = block;
    return (void *)(((uintptr_t)(block + 1) + 15) & ~(uintptr_t)15);
}

void json_free(JsonDoc *doc) {
    Block *block = doc->arena;
    while (block) {
        Block *next = block->next;
        free(block);
        block = next;
    }
    doc->arena = NULL;
    doc->root = NULL;
}

/* -- reader --------------------------------------------------------------------------------- */

typedef struct Reader {
    const char *p, *end;
    void *arena;
    char *err;
    size_t errlen;
    int depth;
} Reader;

static int fail(Reader *r, const char *what) {
    if (r->err && r->errlen) snprintf(r->err, r->errlen, "%s", what);
    return -1;
}

static void skip_space(Reader *r) {
    while (r->p < r->end && (*r->p == ' ' || *r->p == '\t' || *r->p == '\n' || *r->p == '\r'))
        r->p++;
}

static int hex4(const char *p, unsigned *out) {
    unsigned v = 0;
    for (int i = 0; i < 4; i++) {
        char c = p[i];
        v <<= 4;
        if (c >= '0' && c <= '9') v |= (unsigned)(c - '0');
        else if (c >= 'a' && c <= 'f') v |= (unsigned)(c - 'a' + 10);
        else if (c >= 'A' && c <= 'F') v |= (unsigned)(c - 'A' + 10);
        else return -1;
    }
    *out = v;
    return 0;
}

static size_t put_utf8(char *out, unsigned cp) {
    if (cp < 0x80) { out[0] = (char)cp; return 1; }
    if (cp < 0x800) {
        out[0] = (char)(0xC0 | (cp >> 6)); out[1] = (char)(0x80 | (cp & 0x3F)); return 2;
    }
    if (cp < 0x10000) {
        out[0] = (char)(0xE0 | (cp >> 12)); out[1] = (char)(0x80 | ((cp >> 6) & 0x3F));
        out[2] = (char)(0x80 | (cp & 0x3F)); return 3;
    }
    out[0] = (char)(0xF0 | (cp >> 18)); out[1] = (char)(0x80 | ((cp >> 12) & 0x3F));
    out[2] = (char)(0x80 | ((cp >> 6) & 0x3F)); out[3] = (char)(0x80 | (cp & 0x3F));
    return 4;
}

static int read_string(Reader *r, char **out) {
    r->p++; /* the opening quote */
    const char *start = r->p;
    size_t raw = 0;
    while (r->p + raw < r->end && r->p[raw] != '"') raw += (r->p[raw] == '\\') ? 2 : 1;
    if (r->p + raw >= r->end) return fail(r, "a string is not closed");
    char *text = arena_alloc(&r->arena, raw + 1); /* escapes only shrink */
    if (!text) return fail(r, "out of memory");
    size_t n = 0;
    const char *p = start, *stop = start + raw;
    while (p < stop) {
        char c = *p++;
        if ((unsigned char)c < 0x20) return fail(r, "a control character inside a string");
        if (c != '\\') { text[n++] = c; continue; }
        char e = *p++;
        switch (e) {
        case '"': text[n++] = '"'; break;
        case '\\': text[n++] = '\\'; break;
        case '/': text[n++] = '/'; break;
        case 'b': text[n++] = '\b'; break;
        case 'f': text[n++] = '\f'; break;
        case 'n': text[n++] = '\n'; break;
        case 'r': text[n++] = '\r'; break;
        case 't': text[n++] = '\t'; break;
        case 'u': {
            unsigned cp;
            if (stop - p < 4 || hex4(p, &cp)) return fail(r, "a bad \\u escape");
            p += 4;
            if (cp >= 0xD800 && cp < 0xDC00) {
                unsigned lo;
                if (stop - p < 6 || p[0] != '\\' || p[1] != 'u' || hex4(p + 2, &lo) ||
                    lo < 0xDC00 || lo >= 0xE000)
                    return fail(r, "a lone surrogate in a \\u escape");
                p += 6;
                cp = 0x10000 + ((cp - 0xD800) << 10) + (lo - 0xDC00);
            }
            if (cp == 0) return fail(r, "a NUL character inside a string");
            n += put_utf8(text + n, cp);
            break;
        }
        default: return fail(r, "a bad escape in a string");
        }
    }
    text[n] = '\0';
    r->p = stop + 1;
    *out = text;
    return 0;
}

static int read_value(Reader *r, JsonValue *v);

static int read_members(Reader *r, JsonValue *v, int object) {
    char close = object ? '}' : ']';
    size_t cap = 8, count = 0;
    JsonValue *items = malloc(cap * sizeof *items);
    char **keys = object ? malloc(cap * sizeof *keys) : NULL;
    int status = -1;
    if (!items || (object && !keys)) { fail(r, "out of memory"); goto done; }
    r->p++;
    skip_space(r);
    if (r->p < r->end && *r->p == close) { r->p++; status = 0; goto done; }
    for (;;) {
        if (count == cap) {
            cap *= 2;
            JsonValue *grown = realloc(items, cap * sizeof *items);
            if (!grown) { fail(r, "out of memory"); goto done; }
            items = grown;
            if (object) {
                char **more = realloc(keys, cap * sizeof *keys);
                if (!more) { fail(r, "out of memory"); goto done; }
                keys = more;
            }
        }
        skip_space(r);
        if (object) {
            if (r->p >= r->end || *r->p != '"') { fail(r, "an object key is not a string"); goto done; }
            if (read_string(r, &keys[count])) goto done;
            skip_space(r);
            if (r->p >= r->end || *r->p != ':') { fail(r, "':' missing after a key"); goto done; }
            r->p++;
        }
        if (read_value(r, &items[count])) goto done;
        count++;
        skip_space(r);
        if (r->p < r->end && *r->p == ',') { r->p++; continue; }
        if (r->p < r->end && *r->p == close) { r->p++; status = 0; break; }
        fail(r, object ? "',' or '}' expected" : "',' or ']' expected");
        goto done;
    }
done:
    if (status == 0) {
        v->count = count;
        v->items = arena_alloc(&r->arena, (count ? count : 1) * sizeof *items);
        if (!v->items) { free(items); free(keys); return fail(r, "out of memory"); }
        memcpy(v->items, items, count * sizeof *items);
        if (object) {
            v->keys = arena_alloc(&r->arena, (count ? count : 1) * sizeof *keys);
            if (!v->keys) { free(items); free(keys); return fail(r, "out of memory"); }
            memcpy(v->keys, keys, count * sizeof *keys);
        }
    }
    free(items);
    free(keys);
    return status;
}

static int read_value(Reader *r, JsonValue *v) {
    memset(v, 0, sizeof *v);
    skip_space(r);
    if (r->p >= r->end) return fail(r, "the text ends where a value was expected");
    char c = *r->p;
    if (c == '{' || c == '[') {
        if (++r->depth > MAX_NESTING) return fail(r, "nested too deeply");
        v->kind = c == '{' ? JSON_OBJECT : JSON_ARRAY;
        int status = read_members(r, v, c == '{');
        r->depth--;
        return status;
    }
    if (c == '"') { v->kind = JSON_STRING; return read_string(r, &v->string); }
    static const struct { const char *word; JsonKind kind; } words[] = {
        {"null", JSON_NULL}, {"true", JSON_TRUE}, {"false", JSON_FALSE}};
    for (size_t i = 0; i < 3; i++) {
        size_t n = strlen(words[i].word);
        if ((size_t)(r->end - r->p) >= n && !memcmp(r->p, words[i].word, n)) {
            v->kind = words[i].kind;
            r->p += n;
            return 0;
        }
    }
    if (c == '-' || (c >= '0' && c <= '9')) {
        char buf[64];
        size_t n = 0;
        while (r->p + n < r->end && n < sizeof buf - 1 && strchr("+-.eE0123456789", r->p[n]))
            n++;
        memcpy(buf, r->p, n);
        buf[n] = '\0';
        char *stop;
        v->number = strtod(buf, &stop);
        if (stop != buf + n || !isfinite(v->number)) return fail(r, "a bad number");
        v->kind = JSON_NUMBER;
        r->p += n;
        return 0;
    }
    return fail(r, "an unexpected character where a value was expected");
}

int json_parse(const char *text, size_t len, JsonDoc *doc, char *err, size_t errlen) {
    Reader r = {text, text + len, NULL, err, errlen, 0};
    doc->root = NULL;
    doc->arena = NULL;
    JsonValue *root = arena_alloc(&r.arena, sizeof *root);
    if (!root) return fail(&r, "out of memory");
    int status = read_value(&r, root);
    if (status == 0) {
        skip_space(&r);
        if (r.p != r.end) status = fail(&r, "text after the value");
    }
    doc->arena = r.arena;
    if (status) { json_free(doc); return -1; }
    doc->root = root;
    return 0;
}

const JsonValue *json_get(const JsonValue *object, const char *key) {
    if (!object || object->kind != JSON_OBJECT) return NULL;
    for (size_t i = 0; i < object->count; i++)
        if (!strcmp(object->keys[i], key)) return &object->items[i];
    return NULL;
}

const JsonValue *json_at(const JsonValue *array, size_t index) {
    if (!array || array->kind != JSON_ARRAY || index >= array->count) return NULL;
    return &array->items[index];
}

const char *json_str(const JsonValue *v, const char *fallback) {
    return v && v->kind == JSON_STRING ? v->string : fallback;
}

double json_num(const JsonValue *v, double fallback) {
    return v && v->kind == JSON_NUMBER ? v->number : fallback;
}

int json_bool(const JsonValue *v, int fallback) {
    if (!v) return fallback;
    if (v->kind == JSON_TRUE) return 1;
    if (v->kind == JSON_FALSE) return 0;
    return fallback;
}

/* -- writer --------------------------------------------------------------------------------- */

void json_out_init(JsonOut *out) { memset(out, 0, sizeof *out); }

void json_out_free(JsonOut *out) {
    free(out->data);
    json_out_init(out);
}

static void put(JsonOut *out, const char *text, size_t n) {
    if (out->failed) return;
    if (out->len + n + 1 > out->cap) {
        size_t cap = out->cap ? out->cap : 256;
        while (out->len + n + 1 > cap) cap *= 2;
        char *grown = realloc(out->data, cap);
        if (!grown) { out->failed = 1; return; }
        out->data = grown;
        out->cap = cap;
    }
    memcpy(out->data + out->len, text, n);
    out->len += n;
    out->data[out->len] = '\0';
}

static void separate(JsonOut *out) {
    if (out->len && !strchr("{[:", out->data[out->len - 1])) put(out, ",", 1);
}

void json_out_open(JsonOut *out, char bracket) { separate(out); put(out, &bracket, 1); }
void json_out_close(JsonOut *out, char bracket) { put(out, &bracket, 1); }

void json_out_string(JsonOut *out, const char *text) {
    separate(out);
    put(out, "\"", 1);
    for (const unsigned char *p = (const unsigned char *)text; *p; p++) {
        char esc[8];
        if (*p == '"' || *p == '\\') { esc[0] = '\\'; esc[1] = (char)*p; put(out, esc, 2); }
        else if (*p < 0x20) { snprintf(esc, sizeof esc, "\\u%04x", *p); put(out, esc, 6); }
        else put(out, (const char *)p, 1);
    }
    put(out, "\"", 1);
}

void json_out_key(JsonOut *out, const char *key) {
    json_out_string(out, key);
    put(out, ":", 1);
}

void json_out_number(JsonOut *out, double value) {
    char buf[40];
    separate(out);
    if (!isfinite(value)) value = 0; /* never sent: the protocol refuses non-finite numbers */
    if (value == floor(value) && fabs(value) < 9007199254740992.0)
        snprintf(buf, sizeof buf, "%.0f", value);
    else
        snprintf(buf, sizeof buf, "%.17g", value);
    put(out, buf, strlen(buf));
}

void json_out_bool(JsonOut *out, int value) {
    separate(out);
    put(out, value ? "true" : "false", value ? 4 : 5);
}

void json_out_value(JsonOut *out, const JsonValue *v) {
    switch (v->kind) {
    case JSON_NULL: separate(out); put(out, "null", 4); break;
    case JSON_TRUE: json_out_bool(out, 1); break;
    case JSON_FALSE: json_out_bool(out, 0); break;
    case JSON_NUMBER: json_out_number(out, v->number); break;
    case JSON_STRING: json_out_string(out, v->string); break;
    case JSON_ARRAY:
    case JSON_OBJECT:
        json_out_open(out, v->kind == JSON_ARRAY ? '[' : '{');
        for (size_t i = 0; i < v->count; i++) {
            if (v->kind == JSON_OBJECT) json_out_key(out, v->keys[i]);
            json_out_value(out, &v->items[i]);
        }
        json_out_close(out, v->kind == JSON_ARRAY ? ']' : '}');
        break;
    }
}
