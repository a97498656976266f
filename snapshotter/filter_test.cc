#include "snapshotter/filter.h"

#include <gtest/gtest.h>

#include <map>

#include "absl/strings/str_join.h"

namespace lazysnap {
namespace {

// An object with flat fields: "name" -> "bar", "labels.foo" -> "true", ...
using Object = std::map<std::string, std::string>;

FieldLookup Lookup(const Object& o) {
  return [&o](const std::vector<std::string>& path) -> std::optional<std::string> {
    auto it = o.find(absl::StrJoin(path, "."));
    if (it == o.end()) return std::nullopt;
    return it->second;
  };
}

bool Matches(std::string_view filter, const Object& o) {
  auto f = Filter::Parse(filter);
  EXPECT_TRUE(f.ok()) << filter << ": " << f.status();
  return f.ok() && f->Match(Lookup(o));
}

const Object kFoo = {{"name", "foo"}, {"labels.foo", "true"}, {"other", "aaa"}};
const Object kBar = {{"name", "bar"}, {"labels.bar", "true"}, {"other", "too complex, yo"}};

TEST(FilterTest, EmptyMatchesEverything) {
  EXPECT_TRUE(Matches("", kFoo));
  auto any = Filter::ParseAny({});
  ASSERT_TRUE(any.ok());
  EXPECT_TRUE(any->Match(Lookup(kBar)));
}

TEST(FilterTest, PresenceEqualityInequality) {
  EXPECT_TRUE(Matches("labels.foo", kFoo));
  EXPECT_FALSE(Matches("labels.foo", kBar));
  EXPECT_TRUE(Matches("name==bar", kBar));
  EXPECT_FALSE(Matches("name==bar", kFoo));
  EXPECT_TRUE(Matches("name!=bar", kFoo));
  EXPECT_FALSE(Matches("name!=bar", kBar));
  // An absent field is "" for != (containerd's semantics): absent != "x" holds.
  EXPECT_TRUE(Matches("parent!=x", kFoo));
  EXPECT_FALSE(Matches("parent!=\"\"", kFoo));
  EXPECT_FALSE(Matches("parent==\"\"", kFoo));  // == needs the field present
}

TEST(FilterTest, CommaIsAnd) {
  EXPECT_TRUE(Matches("name==bar,labels.bar", kBar));
  EXPECT_FALSE(Matches("name==bar,labels.foo", kBar));
  EXPECT_TRUE(Matches("name==bar,labels.bar==true", kBar));
  EXPECT_FALSE(Matches("name==bar,labels.bar==wrong", kBar));
}

TEST(FilterTest, PipeIsOrAtTopLevel) {
  EXPECT_TRUE(Matches("name==foo|name==bar", kFoo));
  EXPECT_TRUE(Matches("name==foo|name==bar", kBar));
  EXPECT_FALSE(Matches("name==baz|name==qux", kBar));
  // ',' binds tighter than '|'.
  EXPECT_TRUE(Matches("name==foo,labels.bar|name==bar", kBar));
  EXPECT_FALSE(Matches("name==foo,labels.bar|name==baz", kFoo));
  EXPECT_TRUE(Matches("labels.foo | labels.bar", kBar));
  // A quoted value may contain '|'.
  EXPECT_TRUE(Matches(R"(other=="a|b")", Object{{"other", "a|b"}}));
}

TEST(FilterTest, AnyOfSeveralStrings) {
  auto f = Filter::ParseAny({"name==foo", "name==bar"});
  ASSERT_TRUE(f.ok());
  EXPECT_TRUE(f->Match(Lookup(kFoo)));
  EXPECT_TRUE(f->Match(Lookup(kBar)));
  EXPECT_FALSE(f->Match(Lookup(Object{{"name", "baz"}})));
}

TEST(FilterTest, QuotedFieldsAndValues) {
  EXPECT_TRUE(Matches(R"(other=="too complex, yo")", kBar));
  const Object labelled = {{"labels.containerd.io/gc.root", "check-walk"},
                           {"labels.more complex label with \\ and \"", "present"}};
  EXPECT_TRUE(Matches(R"(labels."containerd.io/gc.root"==check-walk)", labelled));
  EXPECT_TRUE(Matches(R"(labels."more complex label with \\ and \""==present)", labelled));
  EXPECT_TRUE(Matches(R"(name=="\x62\u0061r")", kBar));
}

TEST(FilterTest, RegularExpressions) {
  EXPECT_TRUE(Matches("other~=[abc]+,name!=bar", kFoo));
  EXPECT_TRUE(Matches("other~=/[abc]+/,name!=bar", kFoo));
  EXPECT_TRUE(Matches("other~=/[abc]{1,2}/", kFoo));
  EXPECT_TRUE(Matches("other~=|a{3}|", kFoo));
  EXPECT_TRUE(Matches(R"(name~=/^f\w+$/)", kFoo));  // regex escapes kept in /.../
  EXPECT_FALSE(Matches("other~=^complex", kBar));  // unanchored search, but ^ anchors
  EXPECT_TRUE(Matches("other~=complex", kBar));
}

TEST(FilterTest, SyntaxErrorsAreInvalidArgument) {
  for (const char* bad : {"name==foo,", "labels.", "image~=,id?=?fbaq", "labels.ns/key==value",
                          "labels.key==/value", "labels.|foo|==x", "name=foo", "name===foo",
                          "name==\"unterminated", "name~=/[/", "name==foo|", "|name",
                          R"(name=="\q")", "name==foo bar"}) {
    auto f = Filter::Parse(bad);
    EXPECT_TRUE(absl::IsInvalidArgument(f.status())) << bad << " -> " << f.status();
  }
  EXPECT_TRUE(absl::IsInvalidArgument(Filter::ParseAny({"name==a", "name=="}).status()));
}

}  // namespace
}  // namespace lazysnap
