@rem Starts the Gradle wrapper. Its jar (gradle\wrapper\gradle-wrapper.jar) is a binary this repository does not
@rem carry: open the project in Android Studio, or write the jar once with any local Gradle >= 7 in an empty folder.
@echo off
set APP_HOME=%~dp0
set JAR=%APP_HOME%gradle\wrapper\gradle-wrapper.jar
if not exist "%JAR%" (
    echo error: %JAR% is missing. Open %APP_HOME% in Android Studio and press Run, or in an empty folder with a settings.gradle run "gradle wrapper --gradle-version 8.7" ^(any local Gradle 7 or newer^) and copy its gradle\wrapper\gradle-wrapper.jar to %JAR%. 1>&2
    exit /b 1
)
if defined JAVA_HOME (set JAVA_EXE=%JAVA_HOME%\bin\java.exe) else (set JAVA_EXE=java.exe)
"%JAVA_EXE%" %JAVA_OPTS% %GRADLE_OPTS% -Dorg.gradle.appname=gradlew -classpath "%JAR%" org.gradle.wrapper.GradleWrapperMain %*
