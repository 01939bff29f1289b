/*
 * Writes the recorded DRM reply images under tests/data/drm/card-hdmi/.
 *
 * The images are built with the real UAPI structs (libdrm-dev's drm.h,
 * drm_mode.h, drm_fourcc.h) so they are independent of rootstream's own cffi
 * declarations.  An image is what rootstream's device layer hands its parsers:
 * the ioctl's argument struct as the kernel left it, then the arrays it filled,
 * in the order of the struct's pointer fields.  File names are the ones
 * DrmDevice(on_reply=...) uses, so a dump from a real card drops in beside.
 *
 * The card: i915-like, two CRTCs, HDMI-A-1 connected at 1920x1080@60 driving
 * CRTC 51 (primary plane 31 showing fb 84, cursor plane 40 showing fb 90),
 * DP-1 disconnected, CRTC 72 off.
 *
 * Build and run (tests/test_drm_images.py does this and compares):
 *   gcc -I/usr/include/libdrm -o make_images make_images.c && ./make_images OUTDIR
 */
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <limits.h>
#include <drm.h>
#include <drm_mode.h>
#include <drm_fourcc.h>

static const char *outdir;
static unsigned char image[65536];
static size_t used;

static void add(const void *data, size_t size)
{
	if (used + size > sizeof(image)) {
		fprintf(stderr, "image too large\n");
		exit(1);
	}
	memcpy(image + used, data, size);
	used += size;
}

static void save(const char *name)
{
	char path[4096];
	snprintf(path, sizeof(path), "%s/%s.bin", outdir, name);
	FILE *f = fopen(path, "wb");
	if (!f || fwrite(image, 1, used, f) != used || fclose(f) != 0) {
		perror(path);
		exit(1);
	}
	used = 0;
}

/* A CEA/VESA timing as the kernel reports it. */
static struct drm_mode_modeinfo mode(uint32_t clock, uint16_t h, uint16_t hss, uint16_t hse,
				     uint16_t ht, uint16_t v, uint16_t vss, uint16_t vse,
				     uint16_t vt, uint32_t flags, uint32_t type)
{
	struct drm_mode_modeinfo m;
	memset(&m, 0, sizeof(m));
	m.clock = clock;
	m.hdisplay = h; m.hsync_start = hss; m.hsync_end = hse; m.htotal = ht;
	m.vdisplay = v; m.vsync_start = vss; m.vsync_end = vse; m.vtotal = vt;
	m.vrefresh = (uint32_t)((clock * 1000ull + ht * vt / 2) / ((uint64_t)ht * vt));
	m.flags = flags;
	m.type = type;
	snprintf(m.name, sizeof(m.name), "%ux%u", h, v);
	return m;
}

static void version(void)
{
	static const char name[] = "i915", date[] = "20201103", desc[] = "Intel Graphics";
	struct drm_version v;
	memset(&v, 0, sizeof(v));
	v.version_major = 1; v.version_minor = 6; v.version_patchlevel = 0;
	v.name_len = strlen(name); v.date_len = strlen(date); v.desc_len = strlen(desc);
	add(&v, sizeof(v));
	add(name, v.name_len); add(date, v.date_len); add(desc, v.desc_len);
	save("version");
}

static void resources(void)
{
	uint32_t crtcs[] = {51, 72}, connectors[] = {95, 103}, encoders[] = {94, 102};
	struct drm_mode_card_res r;
	memset(&r, 0, sizeof(r));
	r.count_fbs = 0;  /* fbs belong to the compositor's file, not ours */
	r.count_crtcs = 2; r.count_connectors = 2; r.count_encoders = 2;
	r.min_width = 0; r.max_width = 16384; r.min_height = 0; r.max_height = 16384;
	add(&r, sizeof(r));
	add(crtcs, sizeof(crtcs)); add(connectors, sizeof(connectors)); add(encoders, sizeof(encoders));
	save("resources");
}

static void connectors(void)
{
	struct drm_mode_modeinfo modes[3] = {
		mode(148500, 1920, 2008, 2052, 2200, 1080, 1084, 1089, 1125,
		     DRM_MODE_FLAG_PHSYNC | DRM_MODE_FLAG_PVSYNC,
		     DRM_MODE_TYPE_DRIVER | DRM_MODE_TYPE_PREFERRED),
		mode(74250, 1280, 1390, 1430, 1650, 720, 725, 730, 750,
		     DRM_MODE_FLAG_PHSYNC | DRM_MODE_FLAG_PVSYNC, DRM_MODE_TYPE_DRIVER),
		mode(65000, 1024, 1048, 1184, 1344, 768, 771, 777, 806,
		     DRM_MODE_FLAG_NHSYNC | DRM_MODE_FLAG_NVSYNC, DRM_MODE_TYPE_DRIVER),
	};
	uint32_t hdmi_encoders[] = {94}, props[] = {1, 2, 20};
	uint64_t hdmi_values[] = {120, DRM_MODE_DPMS_ON, 51};
	struct drm_mode_get_connector c;

	memset(&c, 0, sizeof(c));
	c.count_modes = 3; c.count_props = 3; c.count_encoders = 1;
	c.encoder_id = 94; c.connector_id = 95;
	c.connector_type = DRM_MODE_CONNECTOR_HDMIA; c.connector_type_id = 1;
	c.connection = 1;  /* connector_status_connected */
	c.mm_width = 600; c.mm_height = 340; c.subpixel = 2;
	add(&c, sizeof(c));
	add(hdmi_encoders, sizeof(hdmi_encoders)); add(modes, sizeof(modes));
	add(props, sizeof(props)); add(hdmi_values, sizeof(hdmi_values));
	save("connector-95");

	uint32_t dp_encoders[] = {102};
	uint64_t dp_values[] = {0, DRM_MODE_DPMS_OFF, 0};
	memset(&c, 0, sizeof(c));
	c.count_modes = 0; c.count_props = 3; c.count_encoders = 1;
	c.encoder_id = 0; c.connector_id = 103;
	c.connector_type = DRM_MODE_CONNECTOR_DisplayPort; c.connector_type_id = 1;
	c.connection = 2;  /* connector_status_disconnected */
	add(&c, sizeof(c));
	add(dp_encoders, sizeof(dp_encoders));
	add(props, sizeof(props)); add(dp_values, sizeof(dp_values));
	save("connector-103");
}

static void encoders(void)
{
	struct drm_mode_get_encoder e = {
		.encoder_id = 94, .encoder_type = DRM_MODE_ENCODER_TMDS, .crtc_id = 51,
		.possible_crtcs = 0x3, .possible_clones = 0x1,
	};
	add(&e, sizeof(e));
	save("encoder-94");
	struct drm_mode_get_encoder dp = {
		.encoder_id = 102, .encoder_type = DRM_MODE_ENCODER_TMDS, .crtc_id = 0,
		.possible_crtcs = 0x3, .possible_clones = 0x2,
	};
	add(&dp, sizeof(dp));
	save("encoder-102");
}

static void crtcs(void)
{
	struct drm_mode_crtc c;
	memset(&c, 0, sizeof(c));
	c.crtc_id = 51; c.fb_id = 84; c.gamma_size = 256; c.mode_valid = 1;
	c.mode = mode(148500, 1920, 2008, 2052, 2200, 1080, 1084, 1089, 1125,
		      DRM_MODE_FLAG_PHSYNC | DRM_MODE_FLAG_PVSYNC,
		      DRM_MODE_TYPE_DRIVER | DRM_MODE_TYPE_PREFERRED);
	add(&c, sizeof(c));
	save("crtc-51");
	memset(&c, 0, sizeof(c));
	c.crtc_id = 72; c.gamma_size = 256;
	add(&c, sizeof(c));
	save("crtc-72");
}

static void planes(void)
{
	uint32_t ids[] = {31, 40, 49, 58};
	struct drm_mode_get_plane_res r;
	memset(&r, 0, sizeof(r));
	r.count_planes = 4;
	add(&r, sizeof(r));
	add(ids, sizeof(ids));
	save("plane-resources");

	uint32_t primary_formats[] = {DRM_FORMAT_XRGB8888, DRM_FORMAT_ARGB8888,
				      DRM_FORMAT_XBGR8888, DRM_FORMAT_ABGR8888,
				      DRM_FORMAT_RGB565};
	uint32_t cursor_formats[] = {DRM_FORMAT_ARGB8888};
	struct {
		uint32_t id, crtc, fb, possible;
		const uint32_t *formats;
		uint32_t count;
	} all[] = {
		{31, 51, 84, 0x1, primary_formats, 5},
		{40, 51, 90, 0x1, cursor_formats, 1},
		{49, 0, 0, 0x2, primary_formats, 5},
		{58, 0, 0, 0x2, cursor_formats, 1},
	};
	for (size_t i = 0; i < sizeof(all) / sizeof(all[0]); i++) {
		struct drm_mode_get_plane p;
		char name[32];
		memset(&p, 0, sizeof(p));
		p.plane_id = all[i].id; p.crtc_id = all[i].crtc; p.fb_id = all[i].fb;
		p.possible_crtcs = all[i].possible; p.count_format_types = all[i].count;
		add(&p, sizeof(p));
		add(all[i].formats, all[i].count * sizeof(uint32_t));
		snprintf(name, sizeof(name), "plane-%u", all[i].id);
		save(name);
	}
}

/* Object property ids used below; values follow each plane. */
enum { P_TYPE = 8, P_CRTC_X = 9, P_CRTC_Y = 10, P_CRTC_W = 11, P_CRTC_H = 12,
       P_FB_ID = 16, P_CRTC_ID = 17, P_BLEND = 25, P_IN_FORMATS = 30 };

static void plane_properties(void)
{
	uint32_t ids[] = {P_TYPE, P_FB_ID, P_CRTC_ID, P_CRTC_X, P_CRTC_Y, P_CRTC_W, P_CRTC_H,
			  P_BLEND, P_IN_FORMATS};
	/* The cursor sits at (800, -5): partly above the top edge. */
	uint64_t values[4][9] = {
		{1, 84, 51, 0, 0, 1920, 1080, 1, 121},
		{2, 90, 51, 800, (uint64_t)(int64_t)-5, 64, 64, 1, 122},
		{1, 0, 0, 0, 0, 0, 0, 1, 121},
		{2, 0, 0, 0, 0, 0, 0, 1, 122},
	};
	uint32_t planes[] = {31, 40, 49, 58};
	for (int i = 0; i < 4; i++) {
		struct drm_mode_obj_get_properties o;
		char name[32];
		memset(&o, 0, sizeof(o));
		o.count_props = 9; o.obj_id = planes[i]; o.obj_type = DRM_MODE_OBJECT_PLANE;
		add(&o, sizeof(o));
		add(ids, sizeof(ids)); add(values[i], sizeof(values[i]));
		snprintf(name, sizeof(name), "props-%u", planes[i]);
		save(name);
	}
}

static void property(uint32_t id, const char *name, uint32_t flags, const uint64_t *values,
		     uint32_t count_values, const struct drm_mode_property_enum *enums,
		     uint32_t count_enums)
{
	struct drm_mode_get_property p;
	char file[32];
	memset(&p, 0, sizeof(p));
	p.prop_id = id; p.flags = flags;
	snprintf(p.name, sizeof(p.name), "%s", name);
	p.count_values = count_values; p.count_enum_blobs = count_enums;
	add(&p, sizeof(p));
	add(values, count_values * sizeof(uint64_t));
	add(enums, count_enums * sizeof(*enums));
	snprintf(file, sizeof(file), "property-%u", id);
	save(file);
}

static void properties(void)
{
	uint64_t type_values[] = {0, 1, 2};
	struct drm_mode_property_enum type_enums[] = {
		{0, "Overlay"}, {1, "Primary"}, {2, "Cursor"},
	};
	property(P_TYPE, "type", DRM_MODE_PROP_ENUM | DRM_MODE_PROP_IMMUTABLE,
		 type_values, 3, type_enums, 3);
	uint64_t signed_range[] = {(uint64_t)(int64_t)INT_MIN, INT_MAX};
	property(P_CRTC_X, "CRTC_X", DRM_MODE_PROP_ATOMIC | DRM_MODE_PROP_SIGNED_RANGE,
		 signed_range, 2, NULL, 0);
	property(P_CRTC_Y, "CRTC_Y", DRM_MODE_PROP_ATOMIC | DRM_MODE_PROP_SIGNED_RANGE,
		 signed_range, 2, NULL, 0);
	uint64_t range[] = {0, INT_MAX};
	property(P_CRTC_W, "CRTC_W", DRM_MODE_PROP_ATOMIC | DRM_MODE_PROP_RANGE, range, 2, NULL, 0);
	property(P_CRTC_H, "CRTC_H", DRM_MODE_PROP_ATOMIC | DRM_MODE_PROP_RANGE, range, 2, NULL, 0);
	uint64_t fb_type[] = {DRM_MODE_OBJECT_FB};
	property(P_FB_ID, "FB_ID", DRM_MODE_PROP_ATOMIC | DRM_MODE_PROP_OBJECT, fb_type, 1, NULL, 0);
	uint64_t crtc_type[] = {DRM_MODE_OBJECT_CRTC};
	property(P_CRTC_ID, "CRTC_ID", DRM_MODE_PROP_ATOMIC | DRM_MODE_PROP_OBJECT, crtc_type, 1,
		 NULL, 0);
	uint64_t blend_values[] = {0, 1, 2};
	struct drm_mode_property_enum blend_enums[] = {
		{0, "None"}, {1, "Pre-multiplied"}, {2, "Coverage"},
	};
	property(P_BLEND, "pixel blend mode", DRM_MODE_PROP_ENUM, blend_values, 3, blend_enums, 3);
	property(P_IN_FORMATS, "IN_FORMATS", DRM_MODE_PROP_BLOB | DRM_MODE_PROP_IMMUTABLE,
		 NULL, 0, NULL, 0);
}

static void in_formats_blob(void)
{
	uint32_t formats[] = {DRM_FORMAT_XRGB8888, DRM_FORMAT_ARGB8888, DRM_FORMAT_XBGR8888};
	struct drm_format_modifier mods[] = {
		{.formats = 0x7, .offset = 0, .modifier = DRM_FORMAT_MOD_LINEAR},
		{.formats = 0x3, .offset = 0, .modifier = I915_FORMAT_MOD_X_TILED},
	};
	struct drm_format_modifier_blob b;
	memset(&b, 0, sizeof(b));
	b.version = FORMAT_BLOB_CURRENT;
	b.count_formats = 3; b.formats_offset = sizeof(b);
	b.count_modifiers = 2; b.modifiers_offset = sizeof(b) + sizeof(formats) + 4;
	uint32_t pad = 0;  /* keeps the modifier array 8-byte aligned, as the kernel does */
	add(&b, sizeof(b)); add(formats, sizeof(formats)); add(&pad, sizeof(pad));
	add(mods, sizeof(mods));
	save("blob-121");
}

static void framebuffer(const char *name, uint32_t id, uint32_t w, uint32_t h, uint32_t format,
			uint32_t handle, uint32_t pitch, uint64_t modifier)
{
	struct drm_mode_fb_cmd2 f;
	memset(&f, 0, sizeof(f));
	f.fb_id = id; f.width = w; f.height = h; f.pixel_format = format;
	f.flags = DRM_MODE_FB_MODIFIERS;
	f.handles[0] = handle; f.pitches[0] = pitch; f.modifier[0] = modifier;
	add(&f, sizeof(f));
	save(name);
}

static void framebuffers(void)
{
	framebuffer("fb-84", 84, 1920, 1080, DRM_FORMAT_XRGB8888, 1, 7680, DRM_FORMAT_MOD_LINEAR);
	/* The same fb seen without CAP_SYS_ADMIN: the kernel withholds handles. */
	framebuffer("fb-84-unprivileged", 84, 1920, 1080, DRM_FORMAT_XRGB8888, 0, 7680,
		    DRM_FORMAT_MOD_LINEAR);
	/* After a page flip the compositor shows an X-tiled buffer. */
	framebuffer("fb-85-tiled", 85, 1920, 1080, DRM_FORMAT_XRGB8888, 3, 7680,
		    I915_FORMAT_MOD_X_TILED);
	framebuffer("fb-90", 90, 64, 64, DRM_FORMAT_ARGB8888, 2, 256, DRM_FORMAT_MOD_LINEAR);
}

static void events(void)
{
	/* One read() of the card fd: a flip completion, a CRTC-sequence event
	 * (skipped by readers that do not ask for it), then a vblank. */
	struct drm_event_vblank flip;
	memset(&flip, 0, sizeof(flip));
	flip.base.type = DRM_EVENT_FLIP_COMPLETE; flip.base.length = sizeof(flip);
	flip.user_data = 0x1234; flip.tv_sec = 1234; flip.tv_usec = 567890;
	flip.sequence = 4242; flip.crtc_id = 51;
	add(&flip, sizeof(flip));
	struct drm_event_crtc_sequence seq;
	memset(&seq, 0, sizeof(seq));
	seq.base.type = DRM_EVENT_CRTC_SEQUENCE; seq.base.length = sizeof(seq);
	seq.user_data = 7; seq.time_ns = 1234567890123; seq.sequence = 4243;
	add(&seq, sizeof(seq));
	struct drm_event_vblank vbl = flip;
	vbl.base.type = DRM_EVENT_VBLANK; vbl.user_data = 0; vbl.tv_usec = 584557;
	vbl.sequence = 4243;
	add(&vbl, sizeof(vbl));
	save("events");
}

int main(int argc, char **argv)
{
	if (argc != 2) {
		fprintf(stderr, "usage: %s OUTDIR\n", argv[0]);
		return 2;
	}
	outdir = argv[1];
	version();
	resources();
	connectors();
	encoders();
	crtcs();
	planes();
	plane_properties();
	properties();
	in_formats_blob();
	framebuffers();
	events();
	return 0;
}
